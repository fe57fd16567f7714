using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;

namespace Lowbit.Tests.Quantization;

/// <summary>Quantizer.Quantize on the bundled stories260K (dim 64, hidden 172, 5 layers, tied head).</summary>
public class QuantizerTests
{
    private static string Bundled => Path.Combine(AppContext.BaseDirectory, "bundled-model");

    private static LanguageModel Load(IQuantConfig? config = null) =>
        LanguageModel.Load(Bundled, new ModelLoadOptions { Threads = 2, Quantization = config });

    [Fact]
    public void Int8wo_quantizes_every_block_linear_and_leaves_the_head()
    {
        using var lm = Load();
        var report = Quantizer.Quantize(lm.Weights, new Int8WeightOnlyConfig());
        Assert.Equal(35, report.Quantized.Count);
        Assert.All(report.Quantized, q => Assert.Equal("int8wo", q.Format));
        var skipped = Assert.Single(report.Skipped);
        Assert.Equal(new SkippedLayer("lm_head", Quantizer.HeadExcluded), skipped);
        Assert.IsType<Int8PerRowWeight>(lm.Weights.Layers[4].Down);
        Assert.IsType<DenseWeight>(lm.Weights.Classifier);
        Assert.Equal("int8wo: 35 layers quantized, 1 left unquantized (output head excluded by default: lm_head ×1)", report.Summary());
    }

    /// <summary>ModelLoadOptions.QuantizationFilter reaches the Quantizer: a filter taking every layer quantizes the
    /// tied head too, while the embedding keeps its table, and the model still generates.</summary>
    [Fact]
    public void A_load_time_filter_can_quantize_the_tied_head()
    {
        using var lm = LanguageModel.Load(Bundled, new ModelLoadOptions
        {
            Threads = 2,
            Quantization = new Int4WeightInt8ActivationConfig(32),
            QuantizationFilter = static (_, _) => true,
        });
        Assert.IsType<Int4GroupedA8Weight>(lm.Weights.Classifier);
        Assert.DoesNotContain(lm.QuantizationReport!.Skipped, s => s.Name == "lm_head");
        Assert.Equal(Lowbit.Tensors.DType.F32, lm.Weights.Embedding.DType);
        using var generator = new Generator(lm);
        int[] prompt = lm.Tokenizer.Encode("Once upon a time", addBos: true);
        Assert.Equal(8, generator.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 8, StopAtEos = false }).Count());
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    public void Int4wo_skips_down_proj_whose_K_172_is_not_a_multiple_of_the_group(int g)
    {
        using var lm = Load();
        var report = Quantizer.Quantize(lm.Weights, new Int4WeightOnlyConfig(g));
        Assert.Equal(30, report.Quantized.Count);
        Assert.Equal(6, report.Skipped.Count);
        Assert.All(report.Skipped.Where(s => s.Name != "lm_head"), s =>
        {
            Assert.EndsWith("mlp.down_proj", s.Name);
            Assert.Equal($"K=172 not a multiple of {g}", s.Reason);
        });
        Assert.IsType<Int4GroupedWeight>(lm.Weights.Layers[0].Query);
        Assert.IsType<DenseWeight>(lm.Weights.Layers[0].Down);
        Assert.Equal($"int4wo-{g}: 30 layers quantized, 6 left unquantized (K=172 not a multiple of {g}: mlp.down_proj ×5; " +
                     "output head excluded by default: lm_head ×1)", report.Summary());
    }

    /// <summary>Every new format on stories260K: the grouped ones leave down_proj (K = 172) dense and say why; the
    /// per-row ones (and fp6, which needs K mod 4 = 0) quantize all 35 block linears.</summary>
    [Theory]
    [InlineData("nf4", "K=172 not a multiple of 64")]
    [InlineData("nf4-32", "K=172 not a multiple of 32")]
    [InlineData("nf4-dq", "K=172 not a multiple of 64")]
    [InlineData("uintx-3-32", "K=172 not a multiple of 32")]
    [InlineData("8da4w-32", "K=172 not a multiple of 32")]
    [InlineData("fp8wo", null)]
    [InlineData("int8dq", null)]
    [InlineData("fp6", null)]
    [InlineData("fp8dq-tensor", null)]
    [InlineData("fp8dq-row", null)]
    public void New_formats_quantize_or_list_each_layer_with_the_reason(string name, string? downProjReason)
    {
        using var lm = Load();
        var report = Quantizer.Quantize(lm.Weights, QuantConfigs.Parse(name));
        Assert.Equal(downProjReason is null ? 35 : 30, report.Quantized.Count);
        Assert.All(report.Quantized, q => Assert.Equal(name, q.Format));
        Assert.All(report.Skipped.Where(s => s.Name != "lm_head"), s =>
        {
            Assert.EndsWith("mlp.down_proj", s.Name);
            Assert.Equal(downProjReason, s.Reason);
        });
        Assert.Equal(name, lm.Weights.Layers[0].Query.FormatName);
    }

    [Fact]
    public void Int4wo_128_skips_everything_at_dim_64()
    {
        using var lm = Load();
        var report = Quantizer.Quantize(lm.Weights, new Int4WeightOnlyConfig(128));
        Assert.Empty(report.Quantized);
        Assert.Equal(36, report.Skipped.Count);
        Assert.Contains(report.Skipped, s => s.Reason == "K=64 not a multiple of 128");
    }

    [Fact]
    public void A_filter_chooses_the_layers_and_already_quantized_layers_are_reported()
    {
        using var lm = Load();
        var report = Quantizer.Quantize(lm.Weights, new Int8WeightOnlyConfig(), (name, _) => name.Contains("mlp", StringComparison.Ordinal));
        Assert.Equal(15, report.Quantized.Count);
        Assert.Equal(21, report.Skipped.Count);
        Assert.All(report.Skipped, s => Assert.Equal("excluded by the filter", s.Reason));

        var again = Quantizer.Quantize(lm.Weights, new Int4WeightOnlyConfig(32), (_, _) => true);
        Assert.Contains(again.Skipped, s => s.Name == "model.layers.0.mlp.gate_proj" && s.Reason == "already int8wo");
        // The tied head's tensor is the embedding, which stays usable after the head is replaced.
        Assert.Contains(again.Quantized, q => q.Name == "lm_head");
        Assert.Equal(512 * 64, lm.Weights.Embedding.ElementCount);
    }

    /// <summary>int8wo keeps greedy decoding on the F32 path for the first tokens (a report, not a forced
    /// result: if this ever fails, the first diverging position is in the message).</summary>
    [Fact]
    public void Greedy_int8wo_generation_starts_like_f32()
    {
        int[] Generate(IQuantConfig? config)
        {
            using var lm = Load(config);
            using var generator = new Generator(lm);
            int[] prompt = lm.Tokenizer.Encode("Once upon a time", addBos: true);
            return [.. generator.GenerateTokens(prompt, new GenerationOptions { MaxTokens = 8, StopAtEos = false })];
        }

        int[] f32 = Generate(null), int8 = Generate(new Int8WeightOnlyConfig());
        int first = Enumerable.Range(0, f32.Length).FirstOrDefault(i => f32[i] != int8[i], -1);
        Assert.True(first < 0, $"int8wo diverges from F32 at generated token {first}: {string.Join(",", f32)} vs {string.Join(",", int8)}");
    }

    [Fact]
    public void Load_time_quantization_is_reported_on_the_model()
    {
        using var lm = Load(new Int4WeightOnlyConfig(32));
        Assert.NotNull(lm.QuantizationReport);
        Assert.Equal(30, lm.QuantizationReport.Quantized.Count);
        Assert.Null(Load().QuantizationReport);
    }
}
