"""The encode stage as plain functions: catalogue -> cached item vectors, histories -> user vectors.

The functions live in genrec.encoders (the stateless algorithms beside the encoders); the stage
is these three names.
"""

from genrec.encoders.catalogue import encode_items
from genrec.encoders.users import encode_histories, preference_profile

__all__ = ["encode_histories", "encode_items", "preference_profile"]
