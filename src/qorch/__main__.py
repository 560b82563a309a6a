from qorch.cli import main

# Guarded: a spawned simulation process imports this module again.
if __name__ == "__main__":
    raise SystemExit(main())
