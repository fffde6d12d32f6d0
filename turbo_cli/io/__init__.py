"""Files and media (PIL, PyAV, OpenCV, numpy; torch only to turn arrays into tensors).

Image discovery, decoding and atomic writes, resizing for viewing and grids, the original's image preps and
conditioning (Canny, sketch), the video reader/writer, downloads, and the synthetic day/night data. Imports only
the root modules: it knows nothing of models.
"""
