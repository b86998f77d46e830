"""What tests/unit and tests/system share: the fakes, the real programs' drivers, helpers and
tables. No tests here, and no test module imports another: what two need lives here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
