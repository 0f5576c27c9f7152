"""Tool calling shared by the OpenAI and Anthropic dialects: the tool definitions, the
prompt that shows them to the model, and the parsing of its output back into calls."""
