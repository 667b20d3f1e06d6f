"""Streamlit helpers shared by the studio's pages (the engine in ``nst`` never imports this).

Pages stay thin: they lay out sections and call these helpers, one concern per module:

- ``session``: what a session keeps (``InputImage``, ``StudioResult``) and image sizing;
- ``owner`` and ``store``: the browser's private key and the pictures, clips and runs kept
  under it (``store.memory``: this process's memory; ``store.redis``: Redis with ``NST_QUEUE``);
- ``routing``: every page's link goes through ``app.py``, even as a fresh server's first visit;
- ``widgets``: config fields as widgets (kept in the link), the settings panel, ``build_config``;
- ``inputs``: the photo, painting and mask pickers, the pages' input row, upload decoding and
  the sample styles;
- ``masks``: the mask painted over the photo (a brush canvas) and how it becomes a mask;
- ``banner`` and ``keras_guard``: the demo-weights banner, and Keras kept from being cleared
  under a running job;
- ``gallery``: the browser's results, and "continue from this result" requests;
- ``runs``: a run submitted to the job backend (``nst.jobs``), followed live and settled;
- ``results``: a result's panel, downloads, before/after views, loss chart, gallery cards;
- ``video`` and ``live``: the Video and Live pages' parts (``video`` also a clip's run, kept
  and followed like a picture's, and its gallery card);
- ``explain``: the "How it works" illustrations, computed with the engine's own losses.

Session state used here (all per browser session; a person's results and run live in the
store under their browser's key, ``studio.owner`` and ``studio.store``):

- ``current_id``: the result shown on the Stylize page (a new session starts on the newest);
- ``inputs``: the decoded content and style uploads, so reruns do not decode them again;
- ``pending_run``: a "Continue from this result" request, taken by the Stylize page;
- ``run_error`` / ``run_notice``: one-off messages of the last run;
- ``replaced_by``: the run that stopped a running one, said while this tab follows it and once
  after it ends.
"""
