using Lowbit.Tensors;

namespace Lowbit.Models;

/// <summary>
/// The shape of a Llama-family transformer, read from a Hugging Face <c>config.json</c>
/// (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM). Derived fields are computed once here.
/// </summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    /// <summary>Per-head width; config.json's head_dim when given, else hidden_size / heads.</summary>
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>max_position_embeddings: the longest sequence the KV cache is sized for by default.</summary>
    public required int MaxPositionEmbeddings { get; init; }
    public float RmsNormEps { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry a bias (Qwen2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>torch_dtype from config.json, if it names one Lowbit knows.</summary>
    public DType? TorchDType { get; init; }
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int QDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;
    /// <summary>Query heads that share one key/value head (grouped-query attention).</summary>
    public int GroupSize => NumHeads / NumKvHeads;
}

/// <summary>rope_scaling from config.json; only type "llama3" changes the frequencies today.</summary>
public sealed record RopeScaling(
    string Type,
    float Factor,
    float LowFreqFactor,
    float HighFreqFactor,
    int OriginalMaxPositionEmbeddings);
