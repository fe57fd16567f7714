namespace Lowbit.Quantization;

/// <summary>A linear layer that got a new format.</summary>
public sealed record QuantizedLayer(string Name, string Format, long BytesBefore, long BytesAfter);

/// <summary>A linear layer left as it was, and why.</summary>
public sealed record SkippedLayer(string Name, string Reason);

/// <summary>What <see cref="Quantizer.Quantize"/> did to each linear layer: nothing is skipped silently.</summary>
public sealed record QuantizationReport(string ConfigName, IReadOnlyList<QuantizedLayer> Quantized, IReadOnlyList<SkippedLayer> Skipped)
{
    /// <summary>One line for the CLI, e.g. "int4wo-64: 30 layers quantized, 6 left unquantized (K=172 not a
    /// multiple of 64: mlp.down_proj ×5; output head excluded by default: lm_head ×1)". Layers of different
    /// blocks with the same role are counted together.</summary>
    public string Summary()
    {
        string line = $"{ConfigName}: {Quantized.Count} layers quantized, {Skipped.Count} left unquantized";
        if (Skipped.Count == 0)
            return line;
        var reasons = Skipped
            .GroupBy(s => s.Reason)
            .Select(byReason => $"{byReason.Key}: " + string.Join(", ", byReason
                .GroupBy(s => Role(s.Name))
                .Select(byRole => $"{byRole.Key} ×{byRole.Count()}")));
        return $"{line} ({string.Join("; ", reasons)})";
    }

    /// <summary>"model.layers.3.mlp.down_proj" → "mlp.down_proj".</summary>
    private static string Role(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
            return name;
        int dot = name.IndexOf('.', prefix.Length);
        return dot < 0 ? name : name[(dot + 1)..];
    }
}
