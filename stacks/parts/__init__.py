"""The stacks' building blocks: each creates its resources directly in the stack it is given."""

# Why plain classes and not `Construct` subclasses: CloudFormation logical IDs are derived from construct
# paths (Stack/ModelRole/Resource -> ModelRoleXXXXXXXX). A Construct in between would add a path segment,
# change the logical ID of every resource below it, and so replace deployed resources (the model registry,
# the endpoint's deployer, the REST API) on the next `cdk deploy`. Each part therefore creates its resources
# in `scope` under the ids the stacks always used; tests/stacks/test_logical_ids.py pins them. (Renaming with
# override_logical_id instead would have to cover every resource an L2 creates, e.g. each API method.)
