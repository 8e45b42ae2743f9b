"""pclm: predictive-coding language models (PC, iPC, BP) on Hugging Face transformers."""

from .models import PCLMConfig, PCLMForCausalLM, PCLMForMaskedLM, PCLMModel

__version__ = "0.1.0"
__all__ = ["PCLMConfig", "PCLMModel", "PCLMForMaskedLM", "PCLMForCausalLM", "__version__"]
