"""`python -m healthd` is the `healthd` command."""

from healthd.cli import main

raise SystemExit(main())
