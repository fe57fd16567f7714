using System.Text.Json;
using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Safetensors;

/// <summary>
/// The JSON header of a safetensors file: <c>{ name: {"dtype", "shape", "data_offsets": [begin, end)}, ...,
/// "__metadata__": {string: string} }</c>, offsets relative to the data section that follows the header.
/// Parsing validates every entry against the data section so a reader can trust the offsets.
/// </summary>
internal static class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";

    // Every dtype the safetensors spec defines, to tell "not supported here" from "not a dtype at all".
    private static readonly HashSet<string> SpecDTypes =
    [
        "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "I16", "U16",
        "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64",
    ];

    public static (List<SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        string file, byte[] json, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: the safetensors header is not valid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{file}: the safetensors header is a JSON {doc.RootElement.ValueKind}, not an object.");
            var tensors = new List<SafetensorsTensorInfo>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                    ReadMetadata(file, property.Value, metadata);
                else
                    tensors.Add(ReadTensor(file, property.Name, property.Value, dataLength));
            }
            CheckNoOverlap(file, tensors);
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string file, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{file}: \"{MetadataKey}\" is a JSON {value.ValueKind}, not an object of strings.");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new InvalidDataException($"{file}: metadata \"{entry.Name}\" is a JSON {entry.Value.ValueKind}, not a string.");
            metadata[entry.Name] = entry.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo ReadTensor(string file, string name, JsonElement value, long dataLength)
    {
        string where = $"{file}: tensor \"{name}\"";
        if (value.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where} is a JSON {value.ValueKind}, not an object.");

        string dtypeName = Property(where, value, "dtype", JsonValueKind.String).GetString()!;
        DType dtype = DTypes.FromSafetensorsName(dtypeName) ?? throw new InvalidDataException(
            SpecDTypes.Contains(dtypeName)
                ? $"{where} has dtype {dtypeName}, which Lowbit does not support (supported: {string.Join(", ", Enum.GetNames<DType>())})."
                : $"{where} has unknown dtype \"{dtypeName}\".");

        var shapeJson = Property(where, value, "shape", JsonValueKind.Array);
        var shape = new int[shapeJson.GetArrayLength()];
        int i = 0;
        foreach (var d in shapeJson.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim))
                throw new InvalidDataException($"{where} has shape entry {d} that is not an integer.");
            if (dim < 0)
                throw new InvalidDataException($"{where} has a negative dimension in shape {shapeJson}.");
            if (dim > int.MaxValue)
                throw new InvalidDataException($"{where} has dimension {dim} in shape {shapeJson}, over Lowbit's limit of 2^31 - 1.");
            shape[i++] = (int)dim;
        }

        var offsets = Property(where, value, "data_offsets", JsonValueKind.Array);
        if (offsets.GetArrayLength() != 2
            || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end)
            || begin < 0 || end < 0)
            throw new InvalidDataException($"{where} has data_offsets {offsets}; expected [begin, end], two non-negative integers.");
        if (end < begin)
            throw new InvalidDataException($"{where} has data_offsets [{begin}, {end}] that end before they begin.");
        if (end > dataLength)
            throw new InvalidDataException($"{where} has data_offsets [{begin}, {end}] past the end of the data section ({dataLength} bytes).");

        long? count = Shapes.ElementCount(shape);
        if (count is null || count.Value > long.MaxValue / dtype.Size() || count.Value * dtype.Size() != end - begin)
            throw new InvalidDataException(
                $"{where} is {Shapes.Format(shape)} {dtype}, which needs {(count is null ? "more than 2^63" : count.Value * dtype.Size())} bytes, but data_offsets [{begin}, {end}] hold {end - begin}.");
        return new SafetensorsTensorInfo(name, dtype, shape, begin, end);
    }

    private static JsonElement Property(string where, JsonElement obj, string name, JsonValueKind kind)
    {
        if (!obj.TryGetProperty(name, out var value))
            throw new InvalidDataException($"{where} has no \"{name}\".");
        if (value.ValueKind != kind)
            throw new InvalidDataException($"{where} has \"{name}\" of JSON kind {value.ValueKind}; expected {kind}.");
        return value;
    }

    private static void CheckNoOverlap(string file, List<SafetensorsTensorInfo> tensors)
    {
        // Empty tensors occupy no bytes and cannot overlap anything.
        var sorted = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.DataBegin).ToList();
        for (int i = 1; i < sorted.Count; i++)
        {
            var (a, b) = (sorted[i - 1], sorted[i]);
            if (b.DataBegin < a.DataEnd)
                throw new InvalidDataException(
                    $"{file}: tensor \"{b.Name}\" at data_offsets [{b.DataBegin}, {b.DataEnd}] overlaps tensor \"{a.Name}\" at [{a.DataBegin}, {a.DataEnd}].");
        }
    }
}
