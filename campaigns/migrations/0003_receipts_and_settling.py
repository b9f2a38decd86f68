from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_reply_inbox_and_revocable_sessions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DeliveryReceipt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('provider_message_id', fields.CharField(max_length=64)),
                ('status', fields.CharField(max_length=12)),
                ('err_code', fields.CharField(null=True, max_length=8)),
                ('error_text', fields.CharField(default='', max_length=255)),
                ('price', fields.DecimalField(null=True, max_digits=10, decimal_places=5)),
                ('client_ref', fields.CharField(null=True, max_length=100)),
                ('message_timestamp', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('applied_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharField(null=True, max_length=12)),
                ('message_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'delivery_receipt', 'app': 'models', 'unique_together': (('provider_message_id', 'status'),), 'indexes': [Index(fields=['applied_at', 'id']), Index(fields=['received_at'])], 'pk_attr': 'id', 'table_description': 'A delivery receipt as it arrived, stored append-only by the status webhook.'},
            bases=['Model'],
        ),
    ]
