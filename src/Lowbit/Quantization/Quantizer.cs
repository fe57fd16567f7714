using Lowbit.Models;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;

namespace Lowbit.Quantization;

/// <summary>
/// The one entry point, as torchao's quantize_(model, config, filter_fn): replaces every linear layer the
/// filter accepts by the config's format, one tensor at a time (a memory-mapped dense weight is read row by
/// row, so peak memory is the quantized model plus one row).
/// </summary>
public static class Quantizer
{
    /// <summary>The default filter's reason for the output head.</summary>
    public const string HeadExcluded = "output head excluded by default";

    /// <summary>Quantizes <paramref name="weights"/> in place. Without a filter every linear layer is quantized
    /// except the output head <c>lm_head</c> (the embedding is not a linear layer). Layers the config cannot take
    /// (e.g. K not a multiple of the group size) keep their weight and are listed, with the reason, in the
    /// report.</summary>
    public static QuantizationReport Quantize(ModelWeights weights, IQuantConfig config, Func<string, IWeight, bool>? filter = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(config);
        var handler = QuantHandlers.For(config);
        var quantized = new List<QuantizedLayer>();
        var skipped = new List<SkippedLayer>();
        foreach (var (name, weight) in weights.Linears().ToList())
        {
            if (filter is null ? name == "lm_head" : !filter(name, weight))
            {
                skipped.Add(new SkippedLayer(name, filter is null ? HeadExcluded : "excluded by the filter"));
                continue;
            }

            if (weight is not DenseWeight dense)
            {
                skipped.Add(new SkippedLayer(name, $"already {weight.FormatName}"));
                continue;
            }

            var outcome = handler(config, dense);
            if (outcome.Weight is null)
            {
                skipped.Add(new SkippedLayer(name, outcome.SkipReason ?? "not supported"));
                continue;
            }

            weights.SetLinear(name, outcome.Weight);
            quantized.Add(new QuantizedLayer(name, outcome.Weight.FormatName, dense.ByteLength, outcome.Weight.ByteLength));
            // A tied head shares the embedding's tensor, which stays in use.
            if (dense.Tensor != weights.Embedding)
                dense.Dispose();
        }

        return new QuantizationReport(config.ShortName, quantized, skipped);
    }

    /// <summary>One dense weight [N, K] in <paramref name="config"/>'s format (the caller keeps and disposes
    /// <paramref name="dense"/>).</summary>
    /// <exception cref="ArgumentException">The config cannot take this weight; the message gives the reason.</exception>
    public static IWeight QuantizeWeight(IQuantConfig config, Tensors.Tensor dense)
    {
        ArgumentNullException.ThrowIfNull(config);
        var outcome = QuantHandlers.For(config)(config, new DenseWeight(dense));
        return outcome.Weight ?? throw new ArgumentException($"{config.ShortName}: {outcome.SkipReason}.", nameof(dense));
    }
}
