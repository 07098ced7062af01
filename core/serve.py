"""Start Streamlit on app.py with the pages/ folder treated as plain modules.

DefectLens builds its navigation with st.navigation, per role. Streamlit's legacy multipage
mode turns every script in a `pages/` folder next to the entry point into a page until the
first st.navigation call of the process, so a first visit to /admin on a fresh server would
list every script. Setting the flag before Streamlit starts keeps navigation role-filtered
from the first request. This module imports streamlit only to launch it; it holds no logic.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Launch `streamlit run` with the arguments given on the command line."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", *sys.argv[1:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
