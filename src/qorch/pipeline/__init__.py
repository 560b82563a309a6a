"""The job pipeline both drivers share: admit, plan, dispatch, collect, aggregate, verify."""
