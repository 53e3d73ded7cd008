"""A small real LangGraph graph over the design's ``AgentState`` (§3-2), for volume measurements.

One node stands in for the agent: it answers each user message with a reply of representative
length and refreshes ``memory_context`` as a Hindsight recall would. What matters here is what
the checkpointer stores per run, not what the node computes.

(No ``from __future__ import annotations``: LangGraph reads the state's annotations at runtime.)
"""

import operator
import random
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph

_VOCAB_RNG = random.Random(20260217)
WORDS = ["".join(_VOCAB_RNG.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(_VOCAB_RNG.randint(2, 9)))
         for _ in range(3000)]
"""3,000 pseudo-words: text from them compresses about as little under TOAST's pglz as real chat
text does (a dozen repeated words would compress ~10x and hide the checkpoint volume)."""


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    memory_context: str
    bank_id: str
    tool_call_count: Annotated[int, operator.add]


def build(checkpointer: BaseCheckpointSaver[Any], *, seed: int = 0, reply_words: int = 140,
          context_words: int = 170) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled graph; ~800-character replies and ~1,000-character memory contexts by default."""
    rng = random.Random(seed)

    def agent(state: AgentState) -> dict[str, Any]:
        return {"messages": [AIMessage(content=" ".join(rng.choice(WORDS) for _ in range(reply_words)))],
                "tool_call_count": rng.randint(0, 2),
                "memory_context": " ".join(rng.choice(WORDS) for _ in range(context_words))}

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=checkpointer)


def user_turn(rng: random.Random, bank_id: str, words: int = 35) -> dict[str, Any]:
    """The input of one turn: a ~200-character user message."""
    return {"messages": [HumanMessage(content=" ".join(rng.choice(WORDS) for _ in range(words)))],
            "bank_id": bank_id}
