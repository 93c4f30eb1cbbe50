"""`python -m elbolint` is the same as the `elbolint` console script."""

from elbolint.cli import main

if __name__ == "__main__":
    main()
