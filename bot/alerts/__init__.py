"""Alert state: the pure lifecycle (``lifecycle``) and its storage (``store``)."""
