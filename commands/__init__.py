"""The ``koala`` command's groups, one module each, and the plumbing they share (``world``).

They sit above every package they drive and below ``cli``, which only gathers them: none of
them imports ``cli``; the demo reaches the root group through click's context instead.
"""
