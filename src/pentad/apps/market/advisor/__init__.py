"""The AI trading advisor: tools into the analysis, providers (Anthropic, then OpenAI, through their
official SDKs), the offline answer, the grounding check. actions/advisor.py runs them for a user."""
