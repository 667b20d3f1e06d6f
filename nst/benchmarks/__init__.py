"""The benchmark of the engine on this machine, one module per section (``python -m nst.bench``).

``common`` (inputs, machine, defaults), ``steps``, ``time_to_quality`` (the ``quality``
section), ``runs`` (``preview`` and ``default``), ``memory``, ``panel``, ``video``,
``queueing`` (the ``queue`` section), ``report`` (the Markdown table) and ``cli`` (the command
line; ``nst.bench`` runs it).
"""
