"""``python -m dynaplan``: the same command line as the ``dynaplan`` console script."""

from dynaplan.cli import main

if __name__ == "__main__":
    main()
