"""One dynamic partition per org, kept in step with orgs.yaml by ``org_registry_sensor``."""

import dagster as dg

from aicolleague_pipelines.lib.registry import ORG_PARTITIONS_NAME

salesforce_orgs = dg.DynamicPartitionsDefinition(name=ORG_PARTITIONS_NAME)
