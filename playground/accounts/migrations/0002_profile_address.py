from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="profile",
            name="address",
            field=models.GenericIPAddressField(blank=True, db_index=True, null=True,
                                               help_text="A guest's client address (the per-address cap)."),
        ),
    ]
