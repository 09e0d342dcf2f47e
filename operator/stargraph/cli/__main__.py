"""`python -m stargraph.cli`: the same as the `stargraph` command."""

from stargraph.cli import main

raise SystemExit(main())
