import pytest


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    """PBKDF2 at full cost makes lockout tests slow; the hasher choice is tested on its own."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
