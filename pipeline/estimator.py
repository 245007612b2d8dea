"""The built-in FM training job's Estimator, shared by the single-run and tuning branches."""

from __future__ import annotations

from typing import Any

from pipeline.sdk import Estimator

# A generous volume and a day's run limit, as in the seed notebook; FM input for MovieLens is far smaller.
VOLUME_SIZE_GB = 30
MAX_RUN_SECONDS = 86400


def fm_estimator(
    *, image_uri: str, role_arn: str, instance_count: Any, instance_type: Any, output_path: str, session: Any
) -> Any:
    """An Estimator for the FM image; counts and types may be pipeline parameters."""
    return Estimator(
        image_uri=image_uri,
        role=role_arn,
        instance_count=instance_count,
        instance_type=instance_type,
        volume_size=VOLUME_SIZE_GB,
        max_run=MAX_RUN_SECONDS,
        output_path=output_path,
        # The profiler and debugger hooks add rules and S3 paths that the built-in FM image does not use.
        disable_profiler=True,
        debugger_hook_config=False,
        sagemaker_session=session,
    )
