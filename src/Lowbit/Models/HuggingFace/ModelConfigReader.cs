using System.Text.Json;
using Lowbit.Tensors;

namespace Lowbit.Models.HuggingFace;

/// <summary>
/// Reads a Hugging Face model directory's <c>config.json</c> (and <c>generation_config.json</c>, whose
/// bos/eos token ids win when present) into a <see cref="ModelConfig"/>. Defaults follow transformers'
/// LlamaConfig / MistralConfig / Qwen2Config; anything Lowbit's Llama-family model cannot run is refused.
/// </summary>
public static class ModelConfigReader
{
    public const string ConfigFileName = "config.json";
    public const string GenerationConfigFileName = "generation_config.json";

    public static readonly IReadOnlyList<string> SupportedArchitectures =
        ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

    public static ModelConfig Load(string modelDir)
    {
        string dir = Path.GetFullPath(modelDir);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"Model directory {dir} does not exist.");
        using var json = ConfigJson.Load(Path.Combine(dir, ConfigFileName));
        var config = Read(json);
        string generation = Path.Combine(dir, GenerationConfigFileName);
        if (!File.Exists(generation))
            return config;
        using var gen = ConfigJson.Load(generation);
        return config with
        {
            BosTokenId = gen.OptionalInt(gen.Root, "bos_token_id") ?? config.BosTokenId,
            EosTokenIds = gen.OptionalIntList("eos_token_id") ?? config.EosTokenIds,
        };
    }

    private static ModelConfig Read(ConfigJson json)
    {
        string architecture = Architecture(json);
        int hidden = json.RequiredPositiveInt("hidden_size");
        int heads = json.RequiredPositiveInt("num_attention_heads");
        int kvHeads = json.OptionalPositiveInt(json.Root, "num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
            throw json.Error("num_attention_heads", $"({heads}) is not divisible by num_key_value_heads ({kvHeads}).");
        int? headDim = json.OptionalPositiveInt(json.Root, "head_dim");
        if (headDim is null && hidden % heads != 0)
            throw json.Error("hidden_size", $"({hidden}) is not divisible by num_attention_heads ({heads}) and head_dim is absent.");

        if (json.OptionalString(json.Root, "hidden_act") is { } act && act != "silu")
            throw new NotSupportedException($"{json.Path}: hidden_act \"{act}\" is not supported; Lowbit runs silu.");
        if (json.OptionalBool("mlp_bias") == true)
            throw new NotSupportedException($"{json.Path}: mlp_bias true is not supported.");

        // transformers 5 moves rope_theta and the scaling into one "rope_parameters" object.
        var ropeParameters = json.Find(json.Root, "rope_parameters");
        return new ModelConfig
        {
            Architecture = architecture,
            HiddenSize = hidden,
            IntermediateSize = json.RequiredPositiveInt("intermediate_size"),
            NumLayers = json.RequiredPositiveInt("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim ?? hidden / heads,
            VocabSize = json.RequiredPositiveInt("vocab_size"),
            MaxPositionEmbeddings = json.RequiredPositiveInt("max_position_embeddings"),
            RmsNormEps = (float)(json.OptionalPositiveDouble(json.Root, "rms_norm_eps") ?? 1e-6),
            RopeTheta = (float)(json.OptionalPositiveDouble(json.Root, "rope_theta")
                ?? (ropeParameters is { } rp ? json.OptionalPositiveDouble(rp, "rope_theta", "rope_parameters.rope_theta") : null)
                ?? 10000.0),
            RopeScaling = ReadRopeScaling(json, json.Find(json.Root, "rope_scaling") ?? ropeParameters),
            TieWordEmbeddings = json.OptionalBool("tie_word_embeddings") ?? false,
            // Qwen2 always has q/k/v biases; Mistral never; Llama says so in attention_bias.
            AttentionBias = architecture switch
            {
                "Qwen2ForCausalLM" => true,
                "LlamaForCausalLM" => json.OptionalBool("attention_bias") ?? false,
                _ => false,
            },
            TorchDType = ParseTorchDType(json.OptionalString(json.Root, "torch_dtype") ?? json.OptionalString(json.Root, "dtype")),
            BosTokenId = json.OptionalInt(json.Root, "bos_token_id"),
            EosTokenIds = json.OptionalIntList("eos_token_id") ?? [],
        };
    }

    private static string Architecture(ConfigJson json)
    {
        if (json.Find(json.Root, "architectures") is not { ValueKind: JsonValueKind.Array } list
            || list.GetArrayLength() == 0 || list[0].ValueKind != JsonValueKind.String)
            throw json.Error("architectures", "is missing; expected a list such as [\"LlamaForCausalLM\"].");
        string architecture = list[0].GetString()!;
        if (!SupportedArchitectures.Contains(architecture))
            throw new NotSupportedException(
                $"{json.Path}: architecture {architecture} is not supported (supported: {string.Join(", ", SupportedArchitectures)}).");
        return architecture;
    }

    private static RopeScaling? ReadRopeScaling(ConfigJson json, JsonElement? scaling)
    {
        if (scaling is not { } s)
            return null;
        if (s.ValueKind != JsonValueKind.Object)
            throw json.Error("rope_scaling", $"is {s.GetRawText()}; expected an object or null.");
        string? type = json.OptionalString(s, "rope_type") ?? json.OptionalString(s, "type");
        switch (type)
        {
            case null or "default":
                return null;
            case "llama3":
                float Field(string name) => (float)(json.OptionalPositiveDouble(s, name, $"rope_scaling.{name}")
                    ?? throw json.Error($"rope_scaling.{name}", "is missing (rope_type llama3 needs it)."));
                return new RopeScaling(type, Field("factor"), Field("low_freq_factor"), Field("high_freq_factor"),
                    json.OptionalPositiveInt(s, "original_max_position_embeddings", "rope_scaling.original_max_position_embeddings")
                        ?? throw json.Error("rope_scaling.original_max_position_embeddings", "is missing (rope_type llama3 needs it)."));
            default:
                throw new NotSupportedException($"{json.Path}: rope_scaling type \"{type}\" is not supported (supported: llama3).");
        }
    }

    private static DType? ParseTorchDType(string? name) => name switch
    {
        "float32" => DType.F32,
        "bfloat16" => DType.BF16,
        "float16" => DType.F16,
        _ => null,
    };
}
