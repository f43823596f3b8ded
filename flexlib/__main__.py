"""`python -m flexlib train|evaluate|fit ...`: the engine's commands (flexlib.engine.cli) and the paper's
(flexlib.paper.commands)."""
import sys


def main(argv: list[str] | None = None) -> int:
    from .engine.cli import ENGINE_COMMANDS
    from .engine.cli import main as run
    from .paper.commands import PAPER_COMMANDS
    return run(argv, (*ENGINE_COMMANDS, *PAPER_COMMANDS))


if __name__ == "__main__":
    sys.exit(main())
