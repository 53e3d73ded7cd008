"""A small real LangGraph graph over messages; its node is deterministic (no LLM)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph


def echo_graph(saver: Any) -> Any:
    """One node answering ``echo: <last message>``, compiled with ``saver`` as checkpointer."""

    def answer(state: MessagesState) -> dict[str, list[AIMessage]]:
        last = state["messages"][-1]
        return {"messages": [AIMessage(content=f"echo: {last.content}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    return builder.compile(checkpointer=saver)
