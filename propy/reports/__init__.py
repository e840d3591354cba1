"""The report pages: tables and findings from stage outputs, figures, the cost page, rendering, the headline.

Public API: ``tables`` (what the notebooks load and tabulate), ``text`` (page names, terms, findings),
``figures`` (one function per figure), ``cost`` (the cost page's table), ``render.render``,
``headline.headline_markdown``.
"""
