"""OpenDMP: an open-source national shared medical record (DMP)."""
