import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def lz4_where_available(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """The texts (about 6 KB, a tenth of that compressed) are read 50 at a time by every
    FindDocuments: lz4 decompresses them several times faster than PostgreSQL's default pglz."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
        )
        row = cursor.fetchone()
        if row and row[0]:
            cursor.execute("ALTER TABLE xds_entrytext ALTER COLUMN text SET COMPRESSION lz4")


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0003_identifiers_without_pattern_indexes"),
        ("xds", "0002_seen_assertion_unique_constraint"),
    ]

    operations = [
        migrations.CreateModel(
            name="EntryText",
            fields=[
                (
                    "document",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="documents.documententry",
                    ),
                ),
                ("entry_uuid", models.CharField(max_length=64)),
                ("shape", models.PositiveSmallIntegerField()),
                ("text", models.TextField()),
            ],
        ),
        migrations.RunPython(lz4_where_available, migrations.RunPython.noop, elidable=True),
    ]
