"""Seed: "Pipeline Parameters", "Environment Variables", "Secrets Integration", "Stack
Settings", "Caching", "Cache Policy" and "Model Context", imports changed only.

The steps and helpers the seed leaves out are defined here. The secrets the seed's pipeline
names are created first, as a user would with `evenflow secret create`.
"""

import os
from datetime import datetime

from engine import Client, Model, pipeline, step
from engine.config import CachePolicy, DockerSettings


@step
def load_data() -> list[int]:
    return [3, 1, 2]


@step
def train_model(data: list[int]) -> float:
    return sum(data) / len(data)


@step
def evaluate_model(model: float) -> bool:
    return model > 1


@step
def train(data: list[int]) -> float:
    return float(max(data))


@step
def train_on_gpu() -> str:
    return f"{os.environ['CUDA_VISIBLE_DEVICES']}|{os.environ['OMP_NUM_THREADS']}"


@step
def upload_to_s3() -> bool:
    return "AWS_ACCESS_KEY_ID" in os.environ and "API_TOKEN" in os.environ


@step
def train_in_container() -> str:
    return "trained"


@step
def expensive_data_loading() -> list[int]:
    return list(range(100))


@step
def process_data(timestamp: datetime) -> int:
    return 1


def alert_on_failure(exception: BaseException) -> None:
    print(f"alert: {exception}")


def notify_on_success() -> None:
    print("training pipeline succeeded")


docker_settings = DockerSettings(
    requirements=["tensorflow==2.13.0", "pandas"],
    parent_image="tensorflow/tensorflow:latest-gpu"
)

@pipeline(
    name="my_pipeline",                    # Override default name
    enable_cache=True,                     # Enable step caching
    enable_artifact_metadata=True,         # Track artifact metadata
    enable_step_logs=True,                 # Capture step logs
    settings={"docker": docker_settings},  # Configure stack settings
    tags=["production", "v1.0"],          # Add tags for filtering
    model=Model(name="my_model"),          # Link to model registry
    on_failure=alert_on_failure,          # Failure callback
    on_success=notify_on_success,         # Success callback
)
def training_pipeline():
    data = load_data()
    model = train_model(data)
    evaluate_model(model)


@pipeline(
    environment={
        "CUDA_VISIBLE_DEVICES": "0,1",
        "OMP_NUM_THREADS": "4"
    }
)
def gpu_pipeline():
    train_on_gpu()


@pipeline(
    secrets=["aws_credentials", "api_keys"]
)
def secure_pipeline():
    # Secrets are available as environment variables
    upload_to_s3()


@pipeline(settings={"docker": docker_settings})
def containerized_pipeline():
    train_in_container()


@pipeline(enable_cache=True)  # Default is True
def cached_pipeline():
    data = expensive_data_loading()  # Cached after first run
    model = train_model(data)        # Only reruns if data changes


@pipeline(
    cache_policy=CachePolicy(
        max_age_days=7,  # Invalidate cache after 7 days
        ignore_fields=["timestamp"]  # Ignore these fields for cache key
    )
)
def time_sensitive_pipeline():
    process_data(timestamp=datetime.now())


@pipeline(
    model=Model(
        name="customer_churn",
        version="production",
        tags=["classification", "production"]
    )
)
def model_training_pipeline():
    """Pipeline runs are linked to the model version."""
    data = load_data()
    model = train(data)
    return model


def create_seed_secrets() -> None:
    client = Client()
    existing = set(client.list_secrets())
    if "aws_credentials" not in existing:
        client.create_secret("aws_credentials", values={"AWS_ACCESS_KEY_ID": "AKIA-EXAMPLE"})
    if "api_keys" not in existing:
        client.create_secret("api_keys", values={"API_TOKEN": "token-example"})


if __name__ == "__main__":
    create_seed_secrets()
    training_pipeline()
    gpu_pipeline()
    secure_pipeline()
    containerized_pipeline()
    cached_pipeline()
    cached_pipeline()
    time_sensitive_pipeline()
    time_sensitive_pipeline()
    model_training_pipeline()
