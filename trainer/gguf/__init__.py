"""A trained run as GGUF for llama.cpp, Ollama and LM Studio, made by llama.cpp's own converter and quantizer
(`export`), with an Ollama Modelfile (`modelfile`), pushed to the Hub (`push`); `python -m trainer export-gguf`."""
