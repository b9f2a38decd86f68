from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ReplyLabel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reply_id', fields.BigIntField()),
                ('staff_id', fields.IntField(null=True)),
                ('staff_label', fields.CharField(max_length=254)),
                ('old_label', fields.CharField(null=True, max_length=12)),
                ('new_label', fields.CharField(max_length=12)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'reply_label', 'app': 'models', 'indexes': [Index(fields=['reply_id']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': "A staff correction of a reply's label: training data for the reply model."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ApiToken',
            name='label',
            field=fields.CharField(default='', max_length=100),
        ),
        ops.AddField(
            model_name='ApiToken',
            name='revoked_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Reply',
            name='auto_archived',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Reply',
            name='explanation',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Reply',
            name='read_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Reply',
            name='read_by_id',
            field=fields.IntField(null=True),
        ),
        ops.AddIndex(
            model_name='Reply',
            index=Index(fields=['read_at', 'received_at']),
        ),
        ops.AddField(
            model_name='Staff',
            name='session_version',
            field=fields.IntField(default=0),
        ),
    ]
