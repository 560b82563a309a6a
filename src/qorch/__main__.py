from qorch.cli import main

raise SystemExit(main())
