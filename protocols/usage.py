"""Model usage and cost: tokens and USD, reported with results and summed by the hub."""

from __future__ import annotations

from pydantic import Field

from ._base import WireModel


class Usage(WireModel):
    """Tokens and cost of model calls. Summed per task, participant, goal and group."""

    prompt_tokens: int = Field(default=0, ge=0, description="Input tokens.")
    completion_tokens: int = Field(default=0, ge=0, description="Output tokens.")
    cost: float = Field(default=0.0, ge=0.0, description="Cost in USD (litellm's price data).")
    calls: int = Field(default=0, ge=0, description="Model calls made.")
    models: list[str] = Field(
        default_factory=list, max_length=50, description="Models used (litellm model strings)."
    )

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Usage | None) -> Usage:
        """The sum of two usages (a new object)."""
        if other is None:
            return self.model_copy()
        models = list(self.models)
        for m in other.models:
            if m not in models and len(models) < 50:
                models.append(m)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost=self.cost + other.cost,
            calls=self.calls + other.calls,
            models=models,
        )
