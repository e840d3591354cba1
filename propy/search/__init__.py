"""Search your own videos by text: an on-disk index of event embeddings, queries against it, an HTML page.

Public API: ``engine.add_videos`` / ``open_index`` / ``Index.search``; ``store.IndexStore``; ``html.write_page``.
"""
