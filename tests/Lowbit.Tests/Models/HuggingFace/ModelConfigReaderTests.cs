using System.Text.Json.Nodes;
using Lowbit.Models.HuggingFace;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.HuggingFace;

public sealed class ModelConfigReaderTests : TempDirTests
{
    // Llama 3.1 8B's config.json, trimmed.
    private const string Llama31 = """
        {
          "architectures": ["LlamaForCausalLM"],
          "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
          "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
          "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 8192, "rope_type": "llama3"},
          "tie_word_embeddings": false, "attention_bias": false, "torch_dtype": "bfloat16",
          "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu"
        }
        """;

    // The smallest config the reader accepts: every optional field left to its default.
    private const string Minimal = """
        {
          "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
          "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 512, "max_position_embeddings": 256
        }
        """;

    private Lowbit.Models.ModelConfig Load(string config, string? generation = null)
    {
        File.WriteAllText(Dir.File("config.json"), config);
        if (generation is not null)
            File.WriteAllText(Dir.File("generation_config.json"), generation);
        return ModelConfigReader.Load(Dir.Path);
    }

    /// <summary><see cref="Minimal"/> with one field set (or removed, when <paramref name="value"/> is null).</summary>
    private static string MinimalWith(string field, JsonNode? value, bool remove = false)
    {
        var node = JsonNode.Parse(Minimal)!.AsObject();
        if (remove)
            node.Remove(field);
        else
            node[field] = value;
        return node.ToJsonString();
    }

    [Fact]
    public void ReadsLlama31WithLlama3RopeScalingAndGenerationConfigEosList()
    {
        var c = Load(Llama31, """{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}""");
        Assert.Equal("LlamaForCausalLM", c.Architecture);
        Assert.Equal((4096, 14336, 32, 32, 8, 128, 128256, 131072), (c.HiddenSize, c.IntermediateSize, c.NumLayers,
            c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.MaxPositionEmbeddings));
        Assert.Equal(1e-5f, c.RmsNormEps);
        Assert.Equal(500000f, c.RopeTheta);
        Assert.Equal(new Lowbit.Models.RopeScaling("llama3", 8, 1, 4, 8192), c.RopeScaling);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.Equal(DType.BF16, c.TorchDType);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
    }

    [Fact]
    public void AppliesDefaults()
    {
        var c = Load(Minimal);
        Assert.Equal(8, c.NumKvHeads);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(1e-6f, c.RmsNormEps);
        Assert.Null(c.RopeScaling);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.Null(c.TorchDType);
        Assert.Null(c.BosTokenId);
        Assert.Empty(c.EosTokenIds);
    }

    [Fact]
    public void ReadsMistralWithExplicitHeadDim()
    {
        var c = Load("""
            {"architectures": ["MistralForCausalLM"], "hidden_size": 5120, "intermediate_size": 14336,
             "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
             "vocab_size": 131072, "max_position_embeddings": 1024000, "rms_norm_eps": 1e-05,
             "rope_theta": 1000000.0, "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
             "bos_token_id": 1, "eos_token_id": 2}
            """);
        Assert.Equal("MistralForCausalLM", c.Architecture);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(32 * 128, c.QDim);
        Assert.Equal([2], c.EosTokenIds);
    }

    [Fact]
    public void NullHeadDimMeansHiddenOverHeads()
    {
        Assert.Equal(8, Load(MinimalWith("head_dim", null)).HeadDim);
    }

    [Fact]
    public void ReadsQwen2TiedWithAttentionBias()
    {
        var c = Load("""
            {"architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
             "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
             "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645}
            """);
        Assert.Equal(64, c.HeadDim);
        Assert.True(c.TieWordEmbeddings);
        Assert.True(c.AttentionBias);
    }

    [Fact]
    public void ReadsTransformers5RopeParameters()
    {
        var c = Load(MinimalWith("rope_parameters", JsonNode.Parse("""{"rope_theta": 500000.0, "rope_type": "default"}""")));
        Assert.Equal(500000f, c.RopeTheta);
        Assert.Null(c.RopeScaling);
    }

    [Fact]
    public void RejectsUnsupportedArchitecture()
    {
        var e = Assert.Throws<NotSupportedException>(() => Load(MinimalWith("architectures", new JsonArray("GPT2LMHeadModel"))));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("architecture GPT2LMHeadModel is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)", e.Message);
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("dynamic")]
    [InlineData("yarn")]
    public void RejectsUnsupportedRopeScaling(string type)
    {
        var e = Assert.Throws<NotSupportedException>(() => Load(MinimalWith("rope_scaling", new JsonObject { ["type"] = type, ["factor"] = 2.0 })));
        Assert.Contains("config.json", e.Message);
        Assert.Contains($"rope_scaling type \"{type}\" is not supported", e.Message);
    }

    [Fact]
    public void RejectsLlama3ScalingWithoutFactor()
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith("rope_scaling", new JsonObject { ["rope_type"] = "llama3" })));
        Assert.Contains("config.json: rope_scaling.factor is missing", e.Message);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    [InlineData("max_position_embeddings")]
    [InlineData("architectures")]
    public void RejectsMissingRequiredField(string field)
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith(field, null, remove: true)));
        Assert.Contains($"config.json: {field} is missing", e.Message);
    }

    [Theory]
    [InlineData("hidden_size", 0)]
    [InlineData("num_hidden_layers", -2)]
    [InlineData("num_key_value_heads", 0)]
    [InlineData("head_dim", -64)]
    public void RejectsNonPositiveSize(string field, int value)
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith(field, value)));
        Assert.Contains($"config.json: {field} is {value}; it must be positive", e.Message);
    }

    [Fact]
    public void RejectsNonIntegerSize()
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith("hidden_size", "64")));
        Assert.Contains("config.json: hidden_size is \"64\"; expected an integer", e.Message);
    }

    [Fact]
    public void RejectsHeadsNotDivisibleByKvHeads()
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith("num_key_value_heads", 3)));
        Assert.Contains("config.json: num_attention_heads (8) is not divisible by num_key_value_heads (3)", e.Message);
    }

    [Fact]
    public void RejectsHiddenNotDivisibleByHeadsWithoutHeadDim()
    {
        var e = Assert.Throws<InvalidDataException>(() => Load(MinimalWith("num_attention_heads", 6)));
        Assert.Contains("config.json: hidden_size (64) is not divisible by num_attention_heads (6) and head_dim is absent", e.Message);
    }

    [Fact]
    public void RejectsConfigThatIsNotJson()
    {
        var e = Assert.Throws<InvalidDataException>(() => Load("{\"hidden_size\": "));
        Assert.Contains("config.json: not valid JSON", e.Message);
    }

    [Fact]
    public void MissingDirectoryOrConfigNamesThePath()
    {
        string missing = Dir.File("absent");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ModelConfigReader.Load(missing)).Message);
        var e = Assert.Throws<FileNotFoundException>(() => ModelConfigReader.Load(Dir.Path));
        Assert.Equal(Dir.File("config.json"), e.FileName);
        Assert.Contains(Dir.File("config.json"), e.Message);
    }
}
