"""Seed: "Dynamic Pipelines", imports changed only (the steps the seed uses are defined here)."""

from engine import pipeline, step


@step
def load_data() -> list[float]:
    return [0.2, 0.4, 0.9, 0.7]


@step
def train_model(data: list[float], model_type: str) -> dict[str, float]:
    weight = {"linear": 0.5, "tree": 0.8, "forest": 0.9}.get(model_type, 0.1)
    return {"model_type_id": float(len(model_type)), "score": weight * sum(data) / len(data)}


@step
def select_best(models: list[dict[str, float]]) -> dict[str, float]:
    return max(models, key=lambda m: m["score"])


@pipeline(dynamic=True)
def dynamic_training_pipeline(model_types: list[str]):
    """Train multiple models dynamically based on input list."""
    data = load_data()
    
    models = []
    for model_type in model_types:
        # Create steps dynamically
        model = train_model.with_options(name=f"train_{model_type}")(
            data=data,
            model_type=model_type
        )
        models.append(model)
    
    # Select best model
    best_model = select_best(models)
    return best_model


if __name__ == "__main__":
    run = dynamic_training_pipeline(model_types=["linear", "tree", "forest"])
    print(run.status, run.steps["select_best"].output.load())
