"""Seed: "Implicit Dependencies" and "Parallel Execution" (imports changed only; the steps the
seed leaves out are defined here)."""

import time

from engine import pipeline, step


@step
def load_data() -> list[float]:
    return [1.0, 2.0, 3.0, 4.0]


@step
def preprocess(raw_data: list[float]) -> list[float]:
    top = max(raw_data)
    return [x / top for x in raw_data]


@step
def train(clean_data: list[float]) -> float:
    return sum(clean_data) / len(clean_data)


@step
def evaluate(model: float) -> dict[str, float]:
    return {"score": model}


def _trainer(factor: float):  # type: ignore[no-untyped-def]
    def train_model(data: list[float]) -> float:
        time.sleep(0.2)  # long enough to show the three run side by side
        return factor * sum(data)

    return train_model


train_model_a = step(name="train_model_a")(_trainer(1.0))
train_model_b = step(name="train_model_b")(_trainer(2.0))
train_model_c = step(name="train_model_c")(_trainer(0.5))


@step
def compare_models(a: float, b: float, c: float) -> str:
    scores = {"a": a, "b": b, "c": c}
    return max(scores, key=lambda k: scores[k])


@pipeline
def ml_pipeline():
    # ZenML automatically determines execution order
    raw_data = load_data()           # Runs first
    clean_data = preprocess(raw_data)  # Runs second (depends on load_data)
    model = train(clean_data)        # Runs third (depends on preprocess)
    metrics = evaluate(model)        # Runs fourth (depends on train)


@pipeline
def parallel_pipeline():
    data = load_data()

    # These three steps run in parallel (no dependencies between them)
    train_result = train_model_a(data)
    test_result = train_model_b(data)
    baseline = train_model_c(data)

    # This step waits for all three to complete
    best = compare_models(train_result, test_result, baseline)


if __name__ == "__main__":
    ml_pipeline()
    parallel_pipeline()
