"""``python -m qianmian_bankgen`` runs the CLI."""

from qianmian_bankgen.cli import main

raise SystemExit(main())
