"""`python -m trainlab ...` trains one experiment (or a sweep with -m)."""

from trainlab.cli import main

if __name__ == "__main__":
    main()
