"""PCLM Hugging Face classes, registered with the Auto* factories on import."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from .configuration_pclm import PCLMConfig
from .modeling_pclm import PCLMForCausalLM, PCLMForMaskedLM, PCLMModel, PCLMPreTrainedModel

AutoConfig.register("pclm", PCLMConfig)
AutoModel.register(PCLMConfig, PCLMModel)
AutoModelForMaskedLM.register(PCLMConfig, PCLMForMaskedLM)
AutoModelForCausalLM.register(PCLMConfig, PCLMForCausalLM)

__all__ = ["PCLMConfig", "PCLMModel", "PCLMPreTrainedModel", "PCLMForMaskedLM", "PCLMForCausalLM"]
