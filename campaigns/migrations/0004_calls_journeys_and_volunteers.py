from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from campaigns.models.calls import CallStatus
from campaigns.models.staff import Role
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_receipts_and_settling')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CallTask',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.IntField()),
                ('run', fields.ForeignKeyField('models.CampaignRun', source_field='run_id', db_constraint=True, to_field='id', related_name='call_tasks', on_delete=OnDelete.CASCADE)),
                ('cycle', fields.IntField(default=1)),
                ('person_id', fields.IntField(null=True)),
                ('assignee_id', fields.IntField(null=True)),
                ('status', fields.CharEnumField(default=CallStatus.TODO, description='TODO: todo\nCLAIMED: claimed\nRETRY: retry\nDONE: done\nINJOIGNABLE: injoignable\nCANCELLED: cancelled', enum_type=CallStatus, max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharField(null=True, max_length=16)),
                ('orientation', fields.CharField(null=True, max_length=32)),
                ('escalation_id', fields.IntField(null=True)),
                ('origin', fields.CharField(default='cycle', max_length=16)),
                ('notes', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed_by_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'call_task', 'app': 'models', 'unique_together': (('run', 'person_id'),), 'indexes': [Index(fields=['campaign_id', 'status', 'due_at']), Index(fields=['assignee_id', 'status', 'due_at']), Index(fields=['person_id'])], 'pk_attr': 'id', 'table_description': 'A call to make to one person in one cycle (a campaign run) of a call campaign.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignCaller',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign_id', fields.IntField()),
                ('staff_id', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'campaign_caller', 'app': 'models', 'unique_together': (('campaign_id', 'staff_id'),), 'indexes': [Index(fields=['staff_id'])], 'pk_attr': 'id', 'table_description': "A staff member (volunteers included) who takes a call campaign's pool."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Campaign',
            name='journey',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Campaign',
            name='parent_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Campaign',
            name='step',
            field=fields.CharField(null=True, max_length=12),
        ),
        ops.AddIndex(
            model_name='Campaign',
            index=Index(fields=['parent_id']),
        ),
        ops.AlterField(
            model_name='Staff',
            name='role',
            field=fields.CharEnumField(description='ADMIN: admin\nCOORDINATOR: coordinator\nCASEWORKER: caseworker\nBENEVOLE: benevole', enum_type=Role, max_length=20),
        ),
    ]
