using System.Text;

namespace Lowbit.Cuda.Ptx;

/// <summary>
/// Builds one PTX kernel body: instructions are written first, each register is declared on first
/// request, and <see cref="Entry"/> puts the declarations in front. Register names that PTX reserves
/// for special registers (<c>%tid</c>, <c>%ctaid</c>, ...) are refused: the driver's JIT rejects the
/// module otherwise (CUDA_ERROR_INVALID_PTX, ILGPU-NOTES.md).
/// </summary>
public sealed class PtxWriter
{
    /// <summary>Special-register names (PTX ISA "Special Registers"); a register named like one is invalid PTX.</summary>
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string>(StringComparer.Ordinal)
    {
        "tid", "ntid", "laneid", "warpid", "nwarpid", "ctaid", "nctaid", "smid", "nsmid", "gridid", "clock",
        "clock64", "globaltimer", "envreg", "pm", "lanemask_eq", "lanemask_le", "lanemask_lt", "lanemask_ge",
        "lanemask_gt", "total_smem_size", "dynamic_smem_size", "aggr_smem_size", "is_explicit_cluster",
        "clusterid", "nclusterid", "cluster_ctaid", "cluster_nctaid", "cluster_ctarank", "cluster_nctarank",
    };

    private readonly StringBuilder _body = new();
    private readonly List<(string Type, string Name, int Count)> _declarations = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>A scalar register of PTX type <paramref name="type"/> (.pred, .b32, .b64, .f32), declared once.</summary>
    public string Reg(string type, string name)
    {
        Declare(type, name, 0);
        return "%" + name;
    }

    /// <summary><paramref name="count"/> registers %name0..%name{count-1} (a PTX parameterized declaration).</summary>
    public string[] Regs(string type, string name, int count)
    {
        Declare(type, name, count);
        return Enumerable.Range(0, count).Select(i => $"%{name}{i}").ToArray();
    }

    /// <summary>One instruction; the semicolon is added.</summary>
    public void Op(string instruction) => _body.Append('\t').Append(instruction).Append(";\n");

    public void Label(string name) => _body.Append(name).Append(":\n");

    public void Comment(string text) => _body.Append("\t// ").Append(text).Append('\n');

    /// <summary>value = value op (value of lane l ^ mask) for each mask in turn, op an f32 instruction (add, max): a
    /// warp's butterfly reduction over the lanes the masks span. <paramref name="scratch"/> takes the other lane's value.</summary>
    public void Butterfly(string op, string value, string scratch, params int[] masks)
    {
        foreach (int mask in masks)
        {
            Op($"shfl.sync.bfly.b32 {scratch}, {value}, {mask}, 31, -1");
            Op($"{op}.f32 {value}, {value}, {scratch}");
        }
    }

    /// <summary>result = silu(gate)·up = gate·up / (1 + 2^(−gate·log2 e)) in f32 (result may be gate), each instruction
    /// under <paramref name="guard"/> ("@p") when given. <paramref name="scratch"/> holds the denominator.</summary>
    public void SiluProduct(string result, string gate, string up, string scratch, string guard = "")
    {
        string g = guard.Length > 0 ? guard + " " : "";
        Op($"{g}mul.f32 {scratch}, {gate}, 0fBFB8AA3B");
        Op($"{g}ex2.approx.f32 {scratch}, {scratch}");
        Op($"{g}add.f32 {scratch}, {scratch}, 0f3F800000");
        Op($"{g}mul.f32 {result}, {gate}, {up}");
        Op($"{g}div.rn.f32 {result}, {result}, {scratch}");
    }

    /// <summary>The kernel: <c>.visible .entry name(params) directives { declarations body }</c>.</summary>
    public string Entry(string name, IEnumerable<string> parameters, string directives)
    {
        var text = new StringBuilder();
        text.Append(".visible .entry ").Append(name).Append("(\n\t")
            .AppendJoin(",\n\t", parameters).Append("\n)\n");
        if (directives.Length > 0)
            text.Append(directives).Append('\n');
        text.Append("{\n");
        foreach (var (type, reg, count) in _declarations)
            text.Append("\t.reg ").Append(type).Append(" %").Append(reg).Append(count > 0 ? $"<{count}>" : "").Append(";\n");
        text.Append(_body).Append("}\n");
        return text.ToString();
    }

    private void Declare(string type, string name, int count)
    {
        if (Reserved.Contains(name) || name.StartsWith("pm", StringComparison.Ordinal) && name.Skip(2).All(char.IsAsciiDigit))
            throw new ArgumentException($"PTX register name %{name} clashes with a special register.", nameof(name));
        if (!_names.Add(name))
            throw new ArgumentException($"PTX register %{name} is declared twice.", nameof(name));
        _declarations.Add((type, name, count));
    }
}
