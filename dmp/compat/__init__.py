"""DMP-compatibility: homologated software, test platform, dev kit."""
