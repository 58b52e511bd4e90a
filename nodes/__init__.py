"""ComfyUI V3 nodes: thin adapters over ``m2penc``. Imported only by ComfyUI (or the test harness)."""
