"""Streamlit helpers shared by the studio's pages (the engine in ``nst`` never imports this).

Pages stay thin: they lay out sections and call these helpers, one concern per module:

- ``session``: what a session keeps (``InputImage``, ``StudioResult``) and image sizing;
- ``widgets``: config fields as widgets (kept in the link), the settings panel, ``build_config``;
- ``inputs``: the photo, painting and mask pickers, the pages' input row, upload decoding and
  the sample styles;
- ``masks``: the mask painted over the photo (a brush canvas) and how it becomes a mask;
- ``network``: the shared backbone cache and the demo-weights banner;
- ``gallery``: the session's results (capped), and "continue from this result" requests;
- ``runs``: starting a job on the process-wide queue (``nst.jobs``) and watching it live;
- ``results``: a result's panel, downloads, before/after views, loss chart, gallery cards;
- ``explain``: the "How it works" illustrations, computed with the engine's own losses.

Session state used here (all per browser session):

- ``results``: list of ``StudioResult``, oldest first, capped by count and bytes;
- ``current_id``: the result shown on the Stylize page;
- ``inputs``: the decoded content and style uploads, so reruns do not decode them again;
- ``mailbox``: a ``RunMailbox`` through which an interrupted run hands over its image;
- ``run_error`` / ``run_notice``: one-off messages of the last run (the count of results the
  cap removed lives on the session's gallery, ``studio.gallery``).
"""
