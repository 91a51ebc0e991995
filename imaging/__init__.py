"""Image checks shared by the crawler and the Beam job: one validator, one set of reason codes."""

from imaging.validate import DECODED_FORMATS, Limits, Rejected, decode_array, normalise, open_image, without_addresses

__all__ = ["DECODED_FORMATS", "Limits", "Rejected", "decode_array", "normalise", "open_image", "without_addresses"]
