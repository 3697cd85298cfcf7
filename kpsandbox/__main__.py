"""`python -m kpsandbox` is the same as the `kpsandbox` command."""

from kpsandbox.cli import main

main()
