"""genrec: a generative recommender pipeline.

Encode user histories with CLIP-family encoders, rank the catalogue with a generative
ranking model, generate personalized images and grounded descriptions, evaluate it all.
"""

__version__ = "0.1.0"
