"""``python -m biasaudit`` runs the command line."""
from .cli import main

main()
