"""OpenDMP settings: one module, every deployment-specific value read from the environment.

Secrets are never defaulted; a malformed value stops start-up (see `config.env`).
`dev.py run` writes local secrets to var/dev.env; production injects them (or `*_FILE`).
"""

from __future__ import annotations

import os
from pathlib import Path

from celery.schedules import crontab

from config.env import env_bool, env_int, env_key, env_list, env_str, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("OPENDMP_DATA_DIR", str(BASE_DIR / "var")))

TESTING = env_bool("OPENDMP_TESTING", False)
DEMO = env_bool("OPENDMP_DEMO", False)
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 32:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 32 characters long")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # domain
    "dmp.common",
    "dmp.terminology",
    "dmp.identity",
    "dmp.records",
    "dmp.documents",
    "dmp.access",
    "dmp.audit",
    "dmp.compat",
    "dmp.cda",
    "dmp.connectors",
    "dmp.accounts",
    # channels and portals
    "dmp.ihe.xds",
    "dmp.ihe.mhd",
    "dmp.portals.professional",
    "dmp.portals.patient",
    "dmp.portals.public",
    "dmp.support",
    "dmp.pilotage",
    "dmp.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dmp.common.middleware.SecurityHeadersMiddleware",
    # Before CsrfViewMiddleware, whose check reads (and spools to disk) the body.
    "dmp.common.middleware.RequestSizeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "dmp.common.sessions.SessionMiddleware",  # a background poll does not extend the session
    "django.middleware.locale.LocaleMiddleware",
    "dmp.common.middleware.MachineChannelLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dmp.pilotage.middleware.RequestMetricsMiddleware",
]
# The web services (MACHINE_CHANNEL_PREFIXES, config.wsgi): MIDDLEWARE without what serves people
# in a browser (static files, session, language choice, trailing-slash redirects, CSRF, login,
# flash messages), none of which a SOAP or FHIR call has or uses (ADR 0012). In MIDDLEWARE's order.
MACHINE_CHANNEL_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "dmp.common.middleware.SecurityHeadersMiddleware",
    "dmp.common.middleware.MachineChannelLanguageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dmp.pilotage.middleware.RequestMetricsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dmp.common.context_processors.site",
            ],
        },
    },
]

DATABASES = {
    "default": parse_database_url(env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'opendmp.sqlite3'}"))
}
_test_db_name = os.environ.get("OPENDMP_TEST_DB_NAME")
if _test_db_name and str(DATABASES["default"]["ENGINE"]).endswith("postgresql"):
    DATABASES["default"]["TEST"] = {"NAME": _test_db_name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env_str("REDIS_URL"),
    }
    if os.environ.get("REDIS_URL")
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if TESTING or DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- HTTP security -------------------------------------------------------------------------
_HTTPS = env_bool("OPENDMP_HTTPS", not (DEMO or TESTING or DEBUG))
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("OPENDMP_SESSION_SECONDS", 30 * 60, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_SAVE_EVERY_REQUEST = True  # sliding inactivity timeout, not moved by background polls
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("OPENDMP_SSL_REDIRECT", _HTTPS)
SECURE_HSTS_SECONDS = 31536000 if _HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("OPENDMP_BEHIND_PROXY", False) else None
)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("OPENDMP_MAX_REQUEST_BYTES", 64 * 1024 * 1024, minimum=1024)
# The whole body of a portal or staff request (an upload view accepts more): Django spools file
# parts of any size to disk before any view runs, which DATA_UPLOAD_MAX_MEMORY_SIZE does not bound.
OPENDMP_MAX_FORM_BYTES = env_int("OPENDMP_MAX_FORM_BYTES", 1024 * 1024, minimum=64 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
DATA_UPLOAD_MAX_NUMBER_FILES = 50

# --- Background work -----------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "memory://")
# Embedded default: tasks run inline, in the caller's process, after commit.
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_TASK_EAGER_PROPAGATES = True
# What `celery beat` runs (production; the embedded mode has no scheduler: the dashboard
# refreshes itself and exceptional-access notices go out after each commit).
CELERY_BEAT_SCHEDULE = {
    "pilotage-refresh": {"task": "pilotage.refresh", "schedule": 60.0},
    "audit-checkpoint": {"task": "audit.checkpoint", "schedule": 300.0},
    # A safety net: notices are sent after each exceptional access's commit, and a send that
    # failed then (gateway down) is retried here.
    "exceptional-access-notices": {"task": "accounts.notify_exceptional_access", "schedule": 300.0},
    "connectors-sync": {"task": "connectors.sync", "schedule": crontab(hour=2, minute=0)},
    "blobs-gc": {"task": "documents.blobs_gc", "schedule": crontab(hour=3, minute=30)},
}

# --- Logging -------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": env_str("OPENDMP_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # One line per eager task run (notices after each exceptional access) is noise.
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- OpenDMP domain settings ---------------------------------------------------------------
# Key-encryption key wrapping every record's data key (AES-256-GCM). Rotating it re-wraps keys.
OPENDMP_MASTER_KEY = env_key("OPENDMP_MASTER_KEY")
# Key for signed audit chain checkpoints (HMAC-SHA-256).
OPENDMP_AUDIT_KEY = env_key("OPENDMP_AUDIT_KEY")
OPENDMP_BLOB_BACKEND = env_str("OPENDMP_BLOB_BACKEND", "filesystem")
if OPENDMP_BLOB_BACKEND not in {"filesystem", "s3"}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("OPENDMP_BLOB_BACKEND must be 'filesystem' or 's3'")
OPENDMP_BLOB_DIR = Path(env_str("OPENDMP_BLOB_DIR", str(DATA_DIR / "blobs")))
OPENDMP_S3_BUCKET = env_str("OPENDMP_S3_BUCKET", "opendmp-documents")
OPENDMP_S3_ENDPOINT_URL = env_str("OPENDMP_S3_ENDPOINT_URL", "") or None
OPENDMP_S3_REGION = env_str("OPENDMP_S3_REGION", "eu-west-3")
# The DMP stores CDA R2 documents; a deployment may widen this (e.g. for IHE conformance runs).
OPENDMP_ALLOWED_MIME_TYPES = env_list("OPENDMP_ALLOWED_MIME_TYPES", ["text/xml"])
OPENDMP_MAX_DOCUMENT_BYTES = env_int("OPENDMP_MAX_DOCUMENT_BYTES", 50 * 1024 * 1024, minimum=1024)
# Repository uniqueId (OID) of this DMP's document repository, as returned in XDS metadata.
OPENDMP_REPOSITORY_UNIQUE_ID = env_str("OPENDMP_REPOSITORY_UNIQUE_ID", "1.2.250.1.213.4.1.1.1")
# Habilitation matrix (profession x document type): a CSV the operator may edit.
OPENDMP_HABILITATION_MATRIX = Path(
    env_str(
        "OPENDMP_HABILITATION_MATRIX",
        str(BASE_DIR / "dmp" / "access" / "data" / "habilitation_matrix.csv"),
    )
)
# Test PKI (demo) and the trust bundle of certification authorities accepted for CPS / structures.
OPENDMP_PKI_DIR = Path(env_str("OPENDMP_PKI_DIR", str(DATA_DIR / "pki")))
OPENDMP_TRUST_BUNDLE = Path(env_str("OPENDMP_TRUST_BUNDLE", str(OPENDMP_PKI_DIR / "trust.pem")))
OPENDMP_MAJORITY_AGE = env_int("OPENDMP_MAJORITY_AGE", 18, minimum=1, maximum=25)
# DMP server parameter `cumul-invisible_patient-masque_ps`.
OPENDMP_ALLOW_MASKED_AND_INVISIBLE = env_bool("OPENDMP_ALLOW_MASKED_AND_INVISIBLE", False)
# Number of independent audit hash chains (spreads the append lock across writers).
OPENDMP_AUDIT_CHAINS = env_int("OPENDMP_AUDIT_CHAINS", 16, minimum=1, maximum=1024)
# Bearer token for machine access to SI Pilotage metrics (JSON, Prometheus); empty = staff session only.
OPENDMP_METRICS_TOKEN = env_str("OPENDMP_METRICS_TOKEN", "")
LOGIN_URL = "/staff/login/"
LOGIN_REDIRECT_URL = "/staff/"
# External sources (HTTPS endpoints of the Assurance Maladie and of the pharmacy dossier).
OPENDMP_SOURCE_REMB_URL = env_str("OPENDMP_SOURCE_REMB_URL", "")
OPENDMP_SOURCE_REMB_TOKEN = env_str("OPENDMP_SOURCE_REMB_TOKEN", "")
OPENDMP_SOURCE_DP_URL = env_str("OPENDMP_SOURCE_DP_URL", "")
OPENDMP_SOURCE_DP_TOKEN = env_str("OPENDMP_SOURCE_DP_TOKEN", "")
OPENDMP_CLOCK_SKEW_SECONDS = env_int("OPENDMP_CLOCK_SKEW_SECONDS", 60, minimum=0, maximum=600)
# How long a worker remembers certificates, structures and software products it looked up: a
# revocation or suspension made elsewhere takes effect within this delay (ADR 0008); 0 = never.
OPENDMP_REFERENCE_CACHE_SECONDS = env_int("OPENDMP_REFERENCE_CACHE_SECONDS", 30, minimum=0, maximum=300)

# XDS channel (SOAP): the audience a VIHF must name, and mutual TLS through a trusted proxy.
OPENDMP_VIHF_AUDIENCE = env_str("OPENDMP_VIHF_AUDIENCE", "urn:dmp")
# Every ITI-41 lot carries its XAdES signature (DMP TD2.1/TD2.2); false only for generic XDS.b
# test tools that know nothing of the DMP profile.
OPENDMP_XDS_REQUIRE_LOT_SIGNATURE = env_bool("OPENDMP_XDS_REQUIRE_LOT_SIGNATURE", True)
# Request header (WSGI name, e.g. HTTP_X_SSL_CLIENT_CERT) carrying the URL-encoded PEM client
# certificate verified by the TLS-terminating proxy; empty when the proxy does not forward it.
OPENDMP_TLS_CLIENT_CERT_HEADER = env_str("OPENDMP_TLS_CLIENT_CERT_HEADER", "")
# Pro Santé Connect (OpenID Connect) for the PS portal; empty issuer = not offered.
OPENDMP_PSC_ISSUER = env_str("OPENDMP_PSC_ISSUER", "")
OPENDMP_PSC_CLIENT_ID = env_str("OPENDMP_PSC_CLIENT_ID", "")
OPENDMP_PSC_CLIENT_SECRET = env_str("OPENDMP_PSC_CLIENT_SECRET", "")
OPENDMP_PSC_SCOPES = env_str("OPENDMP_PSC_SCOPES", "openid scope_all")
OPENDMP_TRUSTED_PROXIES = env_list("OPENDMP_TRUSTED_PROXIES", ["127.0.0.1", "::1"])
OPENDMP_XDS_MAX_REQUEST_BYTES = env_int("OPENDMP_XDS_MAX_REQUEST_BYTES", 128 * 1024 * 1024, minimum=1024)

# CDA validation: the CDA XSD (e.g. the ANS infrastructure/cda/CDA_extended.xsd) and a directory
# of schematrons compiled to XSLT (SVRL output); both optional, skipped when unset.
_cda_xsd = env_str("OPENDMP_CDA_XSD", "")
OPENDMP_CDA_XSD = Path(_cda_xsd) if _cda_xsd else None
_schematron_dir = env_str("OPENDMP_SCHEMATRON_DIR", "")
OPENDMP_SCHEMATRON_DIR = Path(_schematron_dir) if _schematron_dir else None

# --- Patient portal: one-time codes and notifications (outbox | smtp) -----------------------
OPENDMP_MESSAGE_GATEWAY = env_str("OPENDMP_MESSAGE_GATEWAY", "outbox")
OPENDMP_SMS_EMAIL_DOMAIN = env_str("OPENDMP_SMS_EMAIL_DOMAIN", "")
OPENDMP_BREACHED_PASSWORDS_FILE = env_str("OPENDMP_BREACHED_PASSWORDS_FILE", "")
