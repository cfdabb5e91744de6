"""What a reader sees: paper figures (``figures``, the one owner of plotting and style),
the offline HTML report (``html``), its check in headless Chromium (``browser``) and
the bundled CJK font (``fonts/``).

May import: every stage below it (``core`` to ``budget``).
"""
