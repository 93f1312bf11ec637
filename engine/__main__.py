"""``python -m engine`` runs the ``logstrate`` command line."""

from engine.cli import main

main()
